"""Fault-injection tests: real collector and agent processes (or simulated agents on the real
spool and transport, tests/faults/fleet.py) under collector crashes, network cuts, full disks,
a down InfluxDB, a locked SQLite, clock jumps and crashes during rule reloads. Every test counts
each record end to end."""
