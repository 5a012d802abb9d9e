"""tcomp.transform"""
