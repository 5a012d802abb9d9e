"""tcomp.arith"""
