"""Writes the tuner's state file (sources/tuner_state.py reads it): replaced whole through a
temporary file and rename(), so a reader (the exporter, a restarted tuner) never sees half
of one. Under systemd the file lives in the unit's StateDirectory=, /var/lib/ksm-exporter.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile

from ksm_exporter.sources.tuner_state import TunerRecord, read_record

log = logging.getLogger("ksm_exporter.tune")


class StateFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self.failed = False  # one warning, not one a write

    def load(self) -> TunerRecord | None:
        return read_record(self.path)

    def save(self, record: TunerRecord) -> None:
        """Never raises: a tuner that cannot keep its state still tunes, and says so once."""
        directory = os.path.dirname(self.path) or "."
        try:
            fd, staged = tempfile.mkstemp(prefix=".tune-", dir=directory)
            try:
                with os.fdopen(fd, "w") as file:
                    json.dump(dataclasses.asdict(record), file, sort_keys=True)
                    file.write("\n")
                os.chmod(staged, 0o644)  # the exporter, another user, reads it
                os.replace(staged, self.path)
            except BaseException:
                os.unlink(staged)
                raise
        except OSError as err:
            if not self.failed:
                log.warning(
                    "cannot write the state file: a restarted tuner will not know what it "
                    "wrote, and the exporter shows no ksm_tuner_* metrics",
                    extra={"path": self.path, "err": err},
                )
            self.failed = True
            return
        self.failed = False
