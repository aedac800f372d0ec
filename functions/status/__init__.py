"""The operator's status report: its SQL (queries.py), the report (report.py), its text form
(format.py) and the status function's handler (handler.py). Reads only; imports no pyarrow."""
