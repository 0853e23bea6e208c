"""Training side of the Trust & Safety text classifier: the synthetic dataset, its
generator and the training script. Needs scikit-learn; inference does not (it lives in
`services.tns.domain.classifier`).
"""
