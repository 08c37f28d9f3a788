"""Inspection: detectors, gradient check, element drill-down, boundary, breakpoints."""
