from snapcollect.cli import main

raise SystemExit(main())
