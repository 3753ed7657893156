"""Helpers of the gallery's configuration (conf.py names them by their
fully qualified name, as sphinx-gallery accepts)."""

from sphinx_gallery.scrapers import matplotlib_scraper


def tight_matplotlib_scraper(block, block_vars, gallery_conf, **kwargs):
    """sphinx-gallery's matplotlib scraper with the figures saved as
    ``savefig(bbox_inches="tight")`` does, so that long tick labels (a
    table's feature names) are not cut off."""
    return matplotlib_scraper(block, block_vars, gallery_conf, bbox_inches="tight", **kwargs)
