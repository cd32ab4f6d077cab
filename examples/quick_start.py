"""Score the example patients with the shipped model: ``python examples/quick_start.py``.

Reads ``examples/patients.csv`` (a messy clinic export: units in headers, clinic spellings,
missing tests), prints each patient's probability of response with its 90% interval, label and
top reason, then the full explanation of the first patient.
"""

from pathlib import Path

import pandas as pd

from predictor import predict

HERE = Path(__file__).resolve().parent

patients = pd.read_csv(HERE / "patients.csv", dtype=str, keep_default_na=False)
scored = predict(patients)
for _, row in scored.iterrows():
    print(
        f"{row['patient_id']}: {row['response_probability']:.2f} "
        f"({row['probability_low']:.2f}-{row['probability_high']:.2f}), {row['predicted_label']}"
        f" -- {row['top_reasons'].split('; ')[0]}"
    )

first = predict(patients.iloc[0].to_dict())
print(f"\n{scored['patient_id'].iloc[0]} in full:")
print(
    f"  probability {first.probability:.3f}, 90% interval {first.interval[0]:.3f} to "
    f"{first.interval[1]:.3f}, {first.label}"
)
print(f"  baseline log-odds {first.baseline:+.3f}; contributions (log-odds):")
for field, value in sorted(first.contributions.items(), key=lambda item: -abs(item[1])):
    print(f"    {field:<38} {value:+.3f}")
for reason in first.reasons:
    print(f"  reason: {reason}")
for warning in first.warnings:
    print(f"  warning: {warning}")
