"""Thin Textual widgets over the pure-Rich renderables."""

from tui_backprop.widgets.matrix_panel import HeatmapCache, MatrixPanel
from tui_backprop.widgets.plot import PlotextPlot
from tui_backprop.widgets.strips import FlagsView, OpCardView, OverviewView, StatusLine

__all__ = ["FlagsView", "HeatmapCache", "MatrixPanel", "OpCardView", "OverviewView", "PlotextPlot",
           "StatusLine"]
