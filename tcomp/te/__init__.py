"""tcomp.te"""
