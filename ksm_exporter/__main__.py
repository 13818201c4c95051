from ksm_exporter.cli import main

raise SystemExit(main())
