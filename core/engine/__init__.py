"""The engine: the machine that runs a program, the stepper, history and knobs."""
