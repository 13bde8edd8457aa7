from payops.cli import main

main()
