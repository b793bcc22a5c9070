"""Reports: load and group results (data), tables, the one figure module, and write_report."""
