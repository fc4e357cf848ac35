"""DINO (Caron et al., 2021, arXiv:2104.14294): self-distillation with no labels.

One concept per module, named as in the paper and the official code:
``head.DINOHead``, ``loss.DINOLoss``, ``multicrop.MultiCropWrapper``,
``augment.DataAugmentationDINO``, ``schedules.cosine_scheduler``, ``trainer.DINOTrainer``.
"""
