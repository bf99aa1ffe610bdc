"""polysemy.sae"""
