"""Everything that touches torch and skorch, in layers whose calls go one way:

- ``engine``: the one entry point the estimators call (a resolved recipe in, a
  fitted result out; predict on that result), with ``build`` (the network and
  its datasets), ``launch`` (torchrun), ``probe`` (the exact linear probe)
  and ``embedding`` (pooled features);
- ``net``: the skorch nets, which own their training loop, and ``callbacks``;
- ``model`` (trunk + head), ``frozen_cut`` (training on cached activations),
  ``features`` (pooled embeddings), ``text``, ``partial`` (unlabeled
  samples), ``distributed``, ``workers``;
- leaves: ``runtime`` (device, precision, seeding), ``optim`` (parameter
  groups), ``losses``, ``freezing`` (freeze / release verbs), ``inference``
  (the one batched-inference loop), ``data`` (datasets), ``backbones`` (the
  registry), ``weights``, ``tabular``, ``activation_store``, ``source_head``.

Nothing here imports the estimator modules, and importing this package
imports none of its modules: ``import sktransfer`` stays free of torch.
"""
