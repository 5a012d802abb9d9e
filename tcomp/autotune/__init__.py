"""tcomp.autotune"""
