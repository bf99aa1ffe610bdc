"""polysemy.theory"""
