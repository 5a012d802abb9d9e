"""tcomp.runtime"""
