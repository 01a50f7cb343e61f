"""Faults planned as data (grudges, schedules) and applied to a cluster."""
