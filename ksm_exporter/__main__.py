import os

if "_KSM_EXPORTER_VALIDATED_SETTINGS" in os.environ:  # server.main.VALIDATED_SETTINGS
    from ksm_exporter.server.main import main  # settings validated: pydantic stays unloaded
else:
    from ksm_exporter.cli import main

raise SystemExit(main())
