"""polysemy.experiments"""
