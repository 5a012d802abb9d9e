"""tcomp.schedule"""
