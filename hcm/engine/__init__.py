"""Training and evaluation loops: unsupervised HCM training, supervised pretraining, evaluation."""
