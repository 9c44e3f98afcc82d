"""Bootstrap stages and the runner that orders, resumes, retries and records them.

`registry.py` lists the stages of `platform up` in order; each stage module holds one
stage. The CLI builds a `StageContext` and hands the registry's stages to `Runner`.
"""
