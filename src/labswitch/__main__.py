from labswitch.cli import main

main()
