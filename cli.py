"""musubi's command line: `python cli.py ...` (also installed as `musubi`)."""
from federation.cli import main

if __name__ == "__main__":
    main()
