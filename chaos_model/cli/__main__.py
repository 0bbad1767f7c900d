from chaos_model.cli import main

raise SystemExit(main())
