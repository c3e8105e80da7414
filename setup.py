"""electra_tf: ELECTRA pretraining, fine-tuning and serving for TensorFlow 2 / Keras 3."""

from setuptools import find_packages, setup

setup(
    name="electra_tf",
    version="0.1.0",
    description="ELECTRA text-encoder pretraining, fine-tuning and export for TensorFlow 2 / Keras 3",
    packages=find_packages(include=["electra_tf", "electra_tf.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow~=2.20.0",
        "tensorflow-text~=2.20.0",
        "keras>=3.10,<3.16",  # tests/test_keras_hooks.py: the private hooks we override
        "keras-hub",
        "absl-py",
        # Writes the SavedModels' warmup requests (PredictionLog records).
        "tensorflow-serving-api==2.20.0",
    ],
    extras_require={
        "test": ["pytest", "pytest-xdist", "tokenizers", "scikit-learn", "scipy"],
        # torch is pinned in the Makefile (torch==2.13.0, a local CPU build here):
        # an unpinned torch pulls several GB of CUDA packages.
        "parity": ["transformers", "safetensors", "torch"],
        "bench": ["tf-models-official~=2.20.0", "transformers", "torch", "matplotlib"],
        # Curves of the pretraining sweep (benchmarks/pretraining_sweep.py --plot).
        "plots": ["matplotlib"],
    },
)
