"""polysemy.simulate"""
