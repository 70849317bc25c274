"""Whether a finished saec run directory can stand for a run the caller would start: shared by the
benchmark scripts that reuse runs (sweep_variants.py, tide_compare.py)."""
import json
import math


def config_mismatch(run_dir, want):
    """None when run_dir's config.json agrees with every key of `want` (numbers to 1e-5 relative,
    other values as text); else (key, value there, value wanted). A run without config.json or
    summary.json is not finished: ("summary.json", None, "present")."""
    summary, config = run_dir / "summary.json", run_dir / "config.json"
    if not summary.exists() or not config.exists():
        return ("summary.json", None, "present")
    try:
        cfg = json.loads(config.read_text())
    except (OSError, ValueError):
        return ("config.json", None, "readable")
    for key, value in want.items():
        have = cfg.get(key)
        try:
            same = math.isclose(float(have), float(value), rel_tol=1e-5, abs_tol=0)
        except (TypeError, ValueError):
            same = str(have) == str(value)
        if not same:
            return (key, have, value)
    return None
