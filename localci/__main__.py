"""`python -m localci`."""

from localci.cli import main

if __name__ == "__main__":
    main()
