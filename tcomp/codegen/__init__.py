"""tcomp.codegen"""
