"""tcomp.ops"""
