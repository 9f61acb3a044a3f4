"""The embedded demo archive: simulation, layout and local serving."""
