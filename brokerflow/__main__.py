from brokerflow.app.cli import main

raise SystemExit(main())
