"""Ketamine treatment-response predictor (demonstration on synthetic data; not a clinical tool)."""
