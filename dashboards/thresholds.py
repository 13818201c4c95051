"""Where panels turn orange or red: the same limits the KSM alert rules fire on."""

from __future__ import annotations

# ksmd busier than this share of one CPU is excessive scanning overhead.
KSMD_CPU_RATIO = 0.2
# More pages checked in vain than this many per merged page is wasted effort.
UNSHARED_RATIO = 10.0
# Net profit below this is KSM costing more memory than it saves.
PROFIT_BYTES = 0.0
