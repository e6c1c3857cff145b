"""How RadLens draws an image and its overlays, without Qt: window/level, colour tables, slices.

The viewer draws with these (through pyqtgraph); the batch outputs (key images, the PDF report)
draw with the same functions, so a key image looks like the viewer's view of that slice.
"""
