import SwiftVSDirector
print("x")
