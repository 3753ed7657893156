"""Docstring parts shared by the estimators (kept in one place)."""

COMMON_PARAMETERS = """\
    backbone : str, torch.nn.Module or fitted estimator, default="mobilenet_v2"
        A registry name (``sktransfer.list_backbones()``: "resnet18",
        "resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0",
        "convnext_tiny", "vit_b_16", ...), "mlp" for tabular data, an
        ``nn.Module``, or a fitted :class:`PretrainedClassifier` /
        :class:`TransferRegressor` whose trunk (everything but its head) is
        transferred; the source estimator is never modified. A torchvision
        classification model keeps its known stages and has its head
        replaced; any other module is used whole as the feature extractor
        and its top-level children with parameters are its stages.
    weights : str, path or None, default="DEFAULT"
        None trains from random initialisation. "DEFAULT" or a torchvision
        weights name ("IMAGENET1K_V1") loads those weights, found offline in
        the torch hub cache or an installed provider package, else
        downloaded. For an ``nn.Module`` or fitted-estimator backbone
        "DEFAULT" keeps its own parameters. A path to a ``.pth``/``.pt``/
        ``.safetensors`` state dict, or a file written by ``save_weights``,
        is loaded without executing code. Keys or shapes that do not match
        raise.
    freeze_depth : int or "all", default=0
        Number of leading backbone stages that are frozen (0 fine-tunes
        everything); "all" trains only the new head.
    head : tuple of int, default=()
        Hidden layer sizes of the new head; () is a single linear layer.
    head_dropout : float, default=0.0
        Dropout before each layer of the new head.
    hidden_layer_sizes : tuple of int, default=(100,)
        Hidden layers of the "mlp" backbone (ignored by other backbones);
        each hidden layer is one stage for ``freeze_depth``.
    activation : {"relu", "tanh", "logistic", "identity", "gelu"}, default="relu"
        Activation of the "mlp" backbone's hidden layers.
    lr : float, default=1e-3
        Learning rate.
    optimizer : {"adamw", "adam", "sgd"}, default="adamw"
        Optimizer; "sgd" uses momentum 0.9.
    weight_decay : float, default=1e-4
        Weight decay.
    max_epochs : int, default=10
        Number of passes over the training data.
    batch_size : int, default=32
        Samples per training and inference batch.
    image_size : int or None, default=None
        Side of the square input images are resized to; None uses the
        weights' own size (224 for ImageNet weights, the source's size for a
        fitted-estimator backbone).
    device : str, default="auto"
        "auto" uses CUDA when available, else the CPU; or "cpu", "cuda",
        "cuda:N".
    random_state : int, RandomState instance or None, default=None
        Seeds the head's initialisation and the batch order; CPU fits with
        the same seed are identical.
    verbose : int, default=0
        0 is silent, 1 prints a line per epoch, 2 adds a progress bar."""

COMMON_ATTRIBUTES = """\
    history_ : list of dict
        One record per epoch: "epoch", "train_loss", "dur".
    n_stages_ : int
        Number of backbone stages ``freeze_depth`` counts.
    input_kind_ : {"images", "tabular"}
        What the estimator was fitted on.
    n_features_in_ : int
        Number of features (tabular data only).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names of a pandas DataFrame X (tabular data only).
    image_size_ : int
        Side of the images the network was trained on (images only).
    device_ : str
        Device the network lives on."""

FIT_X = """\
        X : images or array-like of shape (n_samples, n_features)
            Images: uint8 ``(N, H, W, C)``, grayscale ``(N, H, W)``, float
            ``(N, C, H, W)`` in [0, 1], a list of image file paths or PIL
            images. Tabular data (``backbone="mlp"``): a 2-D array or
            DataFrame of numbers."""
