"""`python -m localci`."""

from localci.entry import main

if __name__ == "__main__":
    main()
