"""The built-in demo table: customer churn with the dirt real business tables have."""
from __future__ import annotations

import numpy as np
import pandas as pd


def make_demo(n_rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    """A customer-churn table with realistic dirt, deterministic for a seed.

    Dirt: missing values spelled several ways, numbers stored as text with units
    and thousands separators, category spellings that differ in case and spaces,
    duplicate rows, outliers, a signup date, a customer ID and ``churn_reason``,
    a column that leaks the target (it is only filled in after a customer left). ``ticket_notes`` is free text: the
    support desk's notes (none for a customer who never called), whose words tell the customer's mood, a part of
    churn no other column holds.

    Examples
    --------
    >>> make_demo(50).shape[0] >= 50
    True
    """
    rng = np.random.default_rng(seed)
    n = n_rows
    tenure = rng.integers(0, 72, n)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.55, 0.25, 0.2])
    internet = rng.choice(["Fiber optic", "DSL", "No"], n, p=[0.45, 0.35, 0.2])
    payment = rng.choice(["Electronic check", "Mailed check", "Bank transfer", "Credit card"], n)
    region = rng.choice(["North", "South", "East", "West"], n, p=[0.3, 0.3, 0.2, 0.2])
    age = rng.normal(45, 14, n).clip(18, 90).round()
    monthly = (20 + 50 * (internet == "Fiber optic") + 25 * (internet == "DSL") + rng.normal(0, 12, n)).clip(15, 130).round(2)
    support_calls = rng.poisson(1.5, n)
    total = (monthly * np.maximum(tenure, 1) * rng.uniform(0.9, 1.05, n)).round(2)
    signup = pd.Timestamp("2024-06-30") - pd.to_timedelta(tenure * 30 + rng.integers(0, 30, n), unit="D")

    logit = (-1.0 + 1.4 * (contract == "Month-to-month") - 0.9 * (contract == "Two year")
             + 0.7 * (internet == "Fiber optic") - 0.035 * tenure + 0.35 * support_calls
             + 0.4 * (payment == "Electronic check") + 0.01 * (monthly - 60))
    mood = rng.normal(0, 0.6, n)  # unhappiness no other column records; the ticket notes tell it
    logit = logit + mood
    churn = np.where(rng.uniform(size=n) < 1 / (1 + np.exp(-logit)), "Yes", "No")
    reason = np.where(churn == "Yes", rng.choice(["Price", "Competitor", "Service", "Moved"], n), "")

    df = pd.DataFrame({
        "customer_id": [f"C{100000 + i}" for i in range(n)],
        "signup_date": signup.strftime("%Y-%m-%d"),
        "age": age,
        "region": region,
        "contract": contract,
        "internet_service": internet,
        "payment_method": payment,
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": total,
        "support_calls": support_calls,
        "ticket_notes": _notes(mood, support_calls, np.random.default_rng([seed, 1])),
        "churn_reason": reason,
        "churn": churn,
    })

    # Dirt, applied with the same generator so the table stays deterministic.
    obj = df.astype({"age": object, "monthly_charges": object, "total_charges": object, "region": object,
                     "contract": object, "payment_method": object, "churn_reason": object})
    spellings = {"North": ["north", "NORTH", " North", "North "], "Month-to-month": ["month-to-month", "Month to month", "MONTH-TO-MONTH"],
                 "Electronic check": ["electronic check", "Electronic Check", " Electronic check"]}
    for col in ["region", "contract", "payment_method"]:
        for canon, variants in spellings.items():
            hit = np.flatnonzero((obj[col] == canon).to_numpy() & (rng.uniform(size=n) < 0.15))
            obj.loc[hit, col] = rng.choice(variants, len(hit))
    money = rng.uniform(size=n)
    obj["total_charges"] = [f"{v:,.2f}" if u < 0.5 else (f"${v:.2f}" if u < 0.6 else f"{v:.2f}") for v, u in zip(total, money)]
    obj["monthly_charges"] = [f"{v} USD" if u < 0.1 else v for v, u in zip(monthly, rng.uniform(size=n))]
    for col, share in [("age", 0.08), ("monthly_charges", 0.03), ("payment_method", 0.05), ("total_charges", 0.02)]:
        hit = np.flatnonzero(rng.uniform(size=n) < share)
        obj.loc[hit, col] = rng.choice(["", "?", "NA", "n/a", None], len(hit))
    out = np.flatnonzero(rng.uniform(size=n) < 0.01)
    obj.loc[out, "age"] = rng.choice([999, -1, 150], len(out))
    obj["churn_reason"] = obj["churn_reason"].replace("", None)
    dup = rng.choice(n, max(1, n // 50), replace=False)
    obj = pd.concat([obj, obj.iloc[dup]], ignore_index=True)
    return obj.sample(frac=1.0, random_state=seed).reset_index(drop=True)


_TOPICS = ["asked about the invoice", "router kept dropping", "moved the payment date", "wanted a faster plan",
           "set up a second line", "reported slow speeds at night", "asked for a paper bill", "changed the address",
           "installation was rescheduled", "could not log in to the portal", "asked about roaming fees",
           "tv channels missing"]
_UNHAPPY = ["very frustrated", "threatened to cancel", "says a competitor is cheaper", "wants a refund",
            "angry about the price increase", "third call this month", "asked how to end the contract",
            "unhappy with the wait"]
_HAPPY = ["thanked the agent", "issue resolved on the call", "happy with the service", "polite and patient",
          "said the new plan works well", "no further action needed", "will recommend us", "quick fix, satisfied"]


def _notes(mood: np.ndarray, calls: np.ndarray, rng: np.random.Generator) -> list[str | None]:
    """A support note per customer who called: a topic, then two remarks, each unhappy with a probability that grows
    with ``mood`` (from its own generator, so the other columns stay as they were)."""
    unhappy = 1 / (1 + np.exp(-3 * mood / 0.6))
    notes = []
    for m, c in zip(unhappy, calls):
        if c == 0:
            notes.append(None)
            continue
        remarks = [rng.choice(_UNHAPPY) if rng.uniform() < m else rng.choice(_HAPPY) for _ in range(2)]
        notes.append(f"Customer {rng.choice(_TOPICS)}; {remarks[0]}, {remarks[1]}.")
    return notes
