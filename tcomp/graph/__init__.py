"""tcomp.graph"""
