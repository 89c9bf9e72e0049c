from altlas.cli.main import main

raise SystemExit(main())
