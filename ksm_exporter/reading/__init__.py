"""The one reader of the host that the server, `status` and `tune` share.

It composes the sources (sysfs, meminfo, ksmd, the per-process sweep) with the background
sampler behind the cost figures, and keeps what each source's reads cost and the problems
they met. It builds no metric family: collector/ turns its readings into families, status/
into the status model, tune/ into decisions.
"""
