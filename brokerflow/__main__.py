from brokerflow.cli import main

raise SystemExit(main())
