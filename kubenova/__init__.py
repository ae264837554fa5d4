"""kubenova: a Nova-shaped cloud compute controller built as a Kubernetes operator."""

__version__ = "0.1.0"
