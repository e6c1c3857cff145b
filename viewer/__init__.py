"""The RadLens desktop viewer (Qt). Importing this package does not import Qt."""
