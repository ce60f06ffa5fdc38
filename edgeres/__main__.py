"""``python -m edgeres`` runs the command line."""

from edgeres.cli import main

if __name__ == "__main__":
    main()
