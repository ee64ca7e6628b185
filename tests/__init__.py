"""jaxgan's tests: ``python -m pytest`` from the checkout."""
