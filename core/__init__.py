"""The pure-NumPy core (never imports textual, rich or plotext), grouped by part:

model/    config, limits, the op catalog, ops as code, the program built from a config
engine/   the machine (fast path and op-by-op), stepper, history, knobs, re-execution
inspect/  detectors, gradient check, element drill-down, decision boundary, breakpoints
store/    the SQLite trace (format, codec, checks), recorder, replay, diff, metrics out
user/     bring-your-own: the user's NumPy file as the same kind of op list
"""
