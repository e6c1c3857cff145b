; Inno Setup script for the RadLens Windows installer; run by packaging\windows\build.ps1 with
; /DAppVersion=<version from the package metadata> /DFlavour=cpu|cuda after PyInstaller has
; built dist\radlens. Per-user install by default (no administrator rights needed).
#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef Flavour
  #define Flavour "cpu"
#endif

[Setup]
AppId={{5B7A3C52-6E0B-4B0E-9C1D-2F4B7E9A1C30}
AppName=RadLens
AppVersion={#AppVersion}
AppPublisher=RadLens
DefaultDirName={autopf}\RadLens
DefaultGroupName=RadLens
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=RadLens-{#AppVersion}-windows-x64-{#Flavour}-setup
SetupIconFile=..\icons\radlens.ico
UninstallDisplayIcon={app}\radlens.exe
Compression=lzma2/max
SolidCompression=yes
LicenseFile=..\..\dist\radlens\licenses\THIRD-PARTY.txt

[Files]
Source: "..\..\dist\radlens\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\RadLens"; Filename: "{app}\radlens.exe"; Parameters: "view"; IconFilename: "{app}\radlens.exe"
Name: "{group}\RadLens licences"; Filename: "{app}\licenses"
Name: "{userdesktop}\RadLens"; Filename: "{app}\radlens.exe"; Parameters: "view"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked

[Run]
Filename: "{app}\radlens.exe"; Parameters: "view"; Description: "Open RadLens on the sample study"; Flags: nowait postinstall skipifsilent
