"""Rendering: plans, live runs and summaries for people and for other tools."""
