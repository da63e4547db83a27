"""Reports built from the warehouse (the daily report of assets/report.py)."""
